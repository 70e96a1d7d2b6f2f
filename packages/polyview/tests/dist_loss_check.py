"""Run under ``torchrun --nproc-per-node 2``: the gathered loss and its gradients against one process.

Every rank also computes the single-process loss on the whole batch, then its own slice's gathered loss; rank 0
writes the largest differences to the JSON file named on the command line.
"""

import json
import sys

import torch
import torch.distributed as dist
from polyview import METHODS, pvc_loss


def main(path: str) -> None:
    dist.init_process_group("gloo")
    rank, world = dist.get_rank(), dist.get_world_size()
    k_total, m = 8, 4
    g = torch.Generator().manual_seed(0)
    x = torch.randn(k_total, m, 5, generator=g, dtype=torch.float64)
    w0 = torch.randn(5, 6, generator=g, dtype=torch.float64)
    k = k_total // world
    mine = slice(rank * k, (rank + 1) * k)
    diffs = {}
    for method in METHODS:
        w1 = w0.clone().requires_grad_(True)
        z1 = x @ w1  # one process holding the whole batch
        z1.retain_grad()
        loss1 = pvc_loss(z1, 0.3, method)
        loss1.backward()

        w2 = w0.clone().requires_grad_(True)
        z2 = x[mine] @ w2  # this rank's slice, negatives gathered from every rank
        z2.retain_grad()
        loss2 = pvc_loss(z2, 0.3, method, gather=True)
        loss2.backward()
        mean_loss = loss2.detach().clone()
        dist.all_reduce(mean_loss)
        mean_loss /= world
        w_grad = w2.grad.clone()  # what DDP does: average the parameter gradients over ranks
        dist.all_reduce(w_grad)
        w_grad /= world
        diffs[method] = {
            "loss": abs(mean_loss.item() - loss1.item()),
            "param_grad": (w_grad - w1.grad).abs().max().item(),
            # each slice's gradient sums every rank's loss: world x the whole-batch mean's gradient
            "z_grad": (z2.grad / world - z1.grad[mine]).abs().max().item(),
            "loss_value": loss1.item(),
        }
    if rank == 0:
        with open(path, "w") as f:
            json.dump({"world": world, "diffs": diffs}, f)
    dist.destroy_process_group()


if __name__ == "__main__":
    main(sys.argv[1])
