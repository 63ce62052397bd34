"""Forward + backward time of the MoE layer against a dense FFN of the same active size.

Four dispatch styles are measured side by side in one run, on the same input and weights:
- omnirouter: sort frames by expert, one matmul pair per contiguous slice, index_copy back;
- grouped_mm: the same sort, then two `torch._grouped_mm` calls (the layer's CUDA path,
  `dispatch=grouped_mm`; torch's CPU build runs it too);
- masked loop: a boolean mask per expert, gather/scatter by mask (Hugging Face SwitchTransformers);
- one-hot einsum: dispatch/combine tensors of shape (T, E, C) (GShard / fairseq), with the
  capacity C set to the largest expert load so that it drops nothing, like the others.

Prints times in ms and the ratio to the dense FFN (median of per-repeat ratios); nothing here
asserts a time. Usage: python benchmarks/moe_layer.py [--frames 4096] [--repeats 20]
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time
from collections.abc import Callable

import torch
import torch.nn.functional as F

from omnirouter.model.config import Activation
from omnirouter.model.expert_ffn import sorted_expert_ffn
from omnirouter.model.moe import Experts, MoEFeedForward, Router
from omnirouter.model.transformer import FeedForward


def masked_loop(layer: MoEFeedForward, x_ND: torch.Tensor) -> torch.Tensor:
    probs_NE = F.linear(x_ND, layer.router.proj.weight).softmax(-1)  # their own frame-major router
    gate_N, expert_N = probs_NE.max(-1)
    experts = layer.experts
    out_ND = torch.zeros_like(x_ND)
    for expert in range(experts.num_experts):
        mask_N = expert_N == expert
        hidden = torch.relu(x_ND[mask_N] @ experts.w1_EDF[expert] + experts.b1_EF[expert])
        out_ND[mask_N] = hidden @ experts.w2_EFD[expert] + experts.b2_ED[expert]
    return out_ND * gate_N.unsqueeze(-1)


def one_hot_einsum(layer: MoEFeedForward, x_ND: torch.Tensor) -> torch.Tensor:
    probs_NE = F.linear(x_ND, layer.router.proj.weight).softmax(-1)  # their own frame-major router
    gate_N, expert_N = probs_NE.max(-1)
    num_experts = layer.experts.num_experts
    mask_NE = F.one_hot(expert_N, num_experts).to(x_ND.dtype)
    position_NE = (mask_NE.cumsum(0) - 1) * mask_NE
    capacity = int(mask_NE.sum(0).max())
    dispatch_NEC = F.one_hot(position_NE.long(), capacity).to(x_ND.dtype) * mask_NE.unsqueeze(-1)
    x_ECD = torch.einsum("nec,nd->ecd", dispatch_NEC, x_ND)
    experts = layer.experts
    hidden_ECF = torch.relu(
        torch.einsum("ecd,edf->ecf", x_ECD, experts.w1_EDF) + experts.b1_EF[:, None]
    )
    y_ECD = torch.einsum("ecf,efd->ecd", hidden_ECF, experts.w2_EFD) + experts.b2_ED[:, None]
    combine_NEC = dispatch_NEC * gate_N[:, None, None]
    return torch.einsum("nec,ecd->nd", combine_NEC, y_ECD)


def experts_only(layer: MoEFeedForward, x_ND: torch.Tensor) -> list[Callable[[], torch.Tensor]]:
    """The layer's expert computation alone (sorted_expert_ffn, gates fixed at 0.5), on the
    slots the router chose and with every frame on expert 0: the first against the whole layer
    shows what routing costs, the second against the first what splitting the frames into E
    groups of matmuls costs (the idle experts' gradients are still zero-filled there, as in
    training, which costs ~2% at E = 8)."""
    with torch.no_grad():
        expert_N = layer.router(x_ND).argmax(0)
    row_of_slot_N = torch.argsort(expert_N, stable=True)
    counts_E = torch.bincount(expert_N, minlength=layer.experts.num_experts).tolist()
    one_expert_E = [x_ND.shape[0]] + [0] * (layer.experts.num_experts - 1)
    gate_N = torch.full((x_ND.shape[0],), 0.5, requires_grad=True)
    experts = layer.experts
    weights = (experts.w1_EDF, experts.b1_EF, experts.w2_EFD, experts.b2_ED)

    def run(counts: list[int]) -> torch.Tensor:
        return sorted_expert_ffn(
            x_ND, gate_N, weights, row_of_slot_N, counts, Activation.relu, 0.0, accumulate=False
        )

    return [lambda: run(counts_E), lambda: run(one_expert_E)]


def time_interleaved(
    fns: list[Callable[[], torch.Tensor]],
    tensors: list[torch.Tensor],
    repeats: int,
    synchronize: Callable[[], None] | None = None,
) -> list[list[float]]:
    """Seconds of forward + backward per function and repeat. The functions take turns within
    every repeat, so each repeat compares them under the same machine load. Before every pass
    the gradients of `tensors` are set to None, as training does (`zero_grad(set_to_none=True)`),
    and the backward starts from a fixed random output gradient, as inside a network.
    `synchronize` (`torch.cuda.synchronize` on a GPU) is called before the clock starts and
    before it stops: CUDA kernels run asynchronously, and each pass must own its own."""
    wait = synchronize or (lambda: None)
    samples: list[list[float]] = [[] for _ in fns]
    grad_out = None
    for repeat in range(-2, repeats):  # two warm-up rounds
        for fn, fn_samples in zip(fns, samples):
            for tensor in tensors:
                tensor.grad = None
            wait()
            start = time.perf_counter()
            out = fn()
            if grad_out is None:
                grad_out = torch.randn_like(out)
            out.backward(grad_out.reshape(out.shape))
            wait()
            if repeat >= 0:
                fn_samples.append(time.perf_counter() - start)
    return samples


def cpu_name() -> str:
    """The processor's model name: ratios differ between CPUs (MKL picks kernels per CPU)."""
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=4096)
    parser.add_argument("--model-dim", type=int, default=256)
    parser.add_argument("--ffn-dim", type=int, default=1024)
    parser.add_argument("--experts", type=int, nargs="+", default=[2, 4, 8])
    parser.add_argument("--repeats", type=int, default=20, help="at least 2 (quartiles)")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: default)")
    parser.add_argument(
        "--breakdown",
        action="store_true",
        help="also time the experts alone: on the routed slots (no router, sort or routing "
        "gradients) and with every frame on one expert (no splitting into E matmuls)",
    )
    args = parser.parse_args()
    if args.repeats < 2:
        parser.error("--repeats must be at least 2: the ratios' quartiles need two")
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    x_BTD = torch.randn(1, args.frames, args.model_dim, requires_grad=True)
    valid_BT = torch.ones(1, args.frames, dtype=torch.bool)
    dense = FeedForward(args.model_dim, args.ffn_dim, Activation.relu, dropout=0.0)

    print(
        f"T={args.frames} D={args.model_dim} F={args.ffn_dim} top-1 fp32, "
        f"{cpu_name()}, threads={torch.get_num_threads()}, torch {torch.__version__}, "
        f"load average {os.getloadavg()[0]:.2f}"
    )
    header = (
        f"{'E':>3} {'max/mean load':>13} | {'dense FFN':>9} | {'omnirouter':>16} "
        f"{'(middle half)':>13} | {'grouped_mm':>16} | {'masked loop':>16} | "
        f"{'one-hot einsum':>16}"
    )
    if args.breakdown:
        header += f" | {'experts only':>16} | {'one expert':>16}"
    print(header)
    print("-" * len(header))
    for num_experts in args.experts:
        router = Router(args.model_dim, num_experts)
        experts = Experts(num_experts, args.model_dim, args.ffn_dim, Activation.relu, dropout=0.0)
        layer = MoEFeedForward(router, experts, layer=0, dispatch="loop")
        x_ND = x_BTD[0]
        with torch.no_grad():
            load_E = torch.bincount(router(x_ND).argmax(0), minlength=num_experts).float()
        # The same weights through torch._grouped_mm (the CUDA fast path; the CPU runs it too).
        grouped = MoEFeedForward(router, experts, layer=0, dispatch="grouped_mm")
        fns = [
            lambda: dense(x_BTD, valid_BT).out_BTD,
            lambda layer=layer: layer(x_BTD, valid_BT).out_BTD,
            lambda grouped=grouped: grouped(x_BTD, valid_BT).out_BTD,
            lambda layer=layer, x_ND=x_ND: masked_loop(layer, x_ND),
            lambda layer=layer, x_ND=x_ND: one_hot_einsum(layer, x_ND),
        ]
        if args.breakdown:
            fns += experts_only(layer, x_ND)
        dense_s, *results = time_interleaved(
            fns, [x_BTD, *dense.parameters(), *layer.parameters()], args.repeats
        )
        # A ratio per repeat (both measured within moments of each other), then the median:
        # steadier than a ratio of medians when the machine's speed drifts during the run.
        ratios = [[t / d for t, d in zip(fn_s, dense_s)] for fn_s in results]
        cells = [
            f"{statistics.median(fn_s) * 1e3:7.1f} ms {statistics.median(fn_ratios):5.2f}x"
            for fn_s, fn_ratios in zip(results, ratios)
        ]
        # How far the omnirouter ratio moves between repeats: its interquartile range.
        lower, _, upper = statistics.quantiles(ratios[0], n=4)
        cells[0] += f" {f'{lower:.2f}-{upper:.2f}':>13}"
        dense_ms = statistics.median(dense_s) * 1e3
        balance = float(load_E.max() / load_E.mean())
        print(f"{num_experts:>3} {balance:>13.2f} | {dense_ms:6.1f} ms | {' | '.join(cells)}")
    print(
        "ms: median over repeats; ratios: median over repeats of time / dense FFN time in the "
        "same repeat (middle half: their quartiles); target for omnirouter at E=8 on CPU: <= 1.15x"
    )


if __name__ == "__main__":
    main()
