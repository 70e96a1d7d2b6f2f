import torch

# one thread: these tensors are small, and the suite shares a 2-core machine
torch.set_num_threads(1)
