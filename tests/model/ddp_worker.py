"""Worker for test_ddp.py, launched by torchrun: a few DDP steps of a tiny MoE model on gloo.

Each rank trains on different random data; DDP averages gradients, so the replicas must end
bit-identical. DDP is built WITHOUT find_unused_parameters: every expert takes part in every
step. Rank 0 writes what it saw to the JSON file named on the command line.
"""

import json
import sys

import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel

from omnirouter.model import Family, ModelConfig, build_model
from omnirouter.train.losses import total_loss


def main(result_path: str) -> None:
    dist.init_process_group("gloo")
    rank, world_size = dist.get_rank(), dist.get_world_size()
    torch.manual_seed(0)  # same initial weights on every rank
    config = ModelConfig(
        family=Family(sys.argv[2]),
        model_dim=32,
        num_heads=4,
        num_layers=2,
        ffn_dim=64,
        num_experts=4,
        dropout=0.0,
        attention_dropout=0.0,
    )
    model = DistributedDataParallel(
        build_model(config, vocab_size=10), find_unused_parameters=False
    )
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)
    torch.manual_seed(100 + rank)  # different data per rank
    losses = []
    for _ in range(4):
        lengths = torch.randint(24, 41, (2,))
        features = torch.randn(2, 40, 80)
        targets = torch.randint(1, 10, (2, 2))
        output = model(features, lengths)
        terms = total_loss(output, targets, torch.tensor([2, 2]))
        optimizer.zero_grad()
        terms.total.backward()
        optimizer.step()
        losses.append(terms.total.item())
    flat = torch.cat([p.detach().reshape(-1) for p in model.parameters()])
    gathered = [torch.empty_like(flat) for _ in range(world_size)]
    dist.all_gather(gathered, flat)
    if rank == 0:
        result = {
            "world_size": world_size,
            "max_abs_difference": float((gathered[0] - gathered[1]).abs().max()),
            "num_parameters": flat.numel(),
            "losses": losses,
        }
        with open(result_path, "w") as handle:
            json.dump(result, handle)
    dist.destroy_process_group()


if __name__ == "__main__":
    main(sys.argv[1])
