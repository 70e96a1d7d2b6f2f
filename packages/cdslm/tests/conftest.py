import torch

# one thread: the suite's models are tiny, and on a shared 2-core machine a second OpenMP thread only contends
torch.set_num_threads(1)
