"""KV-cache vs naive sampling time of the Transformer proposal on this machine.

Usage: ``python benchmarks/bench_proposal.py [--batch 512] [--tokens 18 48 192] [--no-naive]``.
Prints one CSV row per (T, method): ``n_tokens,batch,method,seconds`` (median over repeats,
compilation excluded), and the naive / KV-cache ratio.

The naive sampler makes T full forward passes: on a 2-core CPU at T = 192, batch 512 one pass
takes ~17 s, so a naive call takes ~1 hour (batch 64: ~400 s). Use ``--no-naive`` or a smaller
``--batch`` there.
"""

from __future__ import annotations

import argparse

import nirbench  # noqa: F401  (x64)
from nirbench.proposal import time_sampling


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=512)
    parser.add_argument("--tokens", type=int, nargs="+", default=[18, 48, 192])
    parser.add_argument("--embed-dim", type=int, default=32)
    parser.add_argument("--heads", type=int, default=4)
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--naive-repeats", type=int, default=1)
    parser.add_argument("--no-naive", action="store_true", help="time the KV-cache sampler only")
    args = parser.parse_args()
    shape = {"embed_dim": args.embed_dim, "n_heads": args.heads, "n_layers": args.layers}
    print("n_tokens,batch,method,seconds", flush=True)
    for n_tokens in args.tokens:
        kv = time_sampling(n_tokens, args.batch, **shape, repeats=args.repeats)
        print(f"{n_tokens},{args.batch},kv_cache,{kv:.6g}", flush=True)
        if not args.no_naive:
            naive = time_sampling(n_tokens, args.batch, **shape, repeats=args.naive_repeats, naive=True)
            print(f"{n_tokens},{args.batch},naive,{naive:.6g}", flush=True)
            print(f"# T={n_tokens}: naive / kv_cache = {naive / kv:.1f}", flush=True)


if __name__ == "__main__":
    main()
