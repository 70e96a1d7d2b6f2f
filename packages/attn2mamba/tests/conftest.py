import torch

torch.set_num_threads(1)  # small tensors: one thread is as fast and does not stall on a shared machine
