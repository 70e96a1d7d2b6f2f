"""One torch thread for the tests: the models are tiny, and on a shared 2-core machine two threads per process
are many times slower when other jobs run."""

import torch

torch.set_num_threads(1)
