"""Match target keys to source keys, in ranked order: exact, remap, rules, prefix, structure.

Every strategy works on names and shapes only; each match records the strategy and the rule that made it.
Structural alignment pairs what is left in the order each side uses its tensors (`zoo.adapt.usage`; the
keys' own order when no trace is given), in three passes: whole modules of one signature; then single
tensors (bare parameters such as a class token or a position embedding, and tensors of modules the first
pass could not pair); then single tensors by output size and element count (a Linear stored as a conv).
It never guesses: when tensors of one signature still differ in number on the two sides, it raises
AmbiguousMatchError listing the candidates.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass

from zoo.adapt.errors import AmbiguousMatchError
from zoo.adapt.plan import EXACT, PREFIX, RULE, STRUCTURE, is_bookkeeping
from zoo.errors import UserInputError

Shape = tuple[int, ...]
# canon(side, key, shape) -> something equal for tensors that may feed each other ("target" / "source").
Canon = Callable[[str, str, Shape], Hashable]


@dataclass(frozen=True)
class Match:
    source: str
    strategy: str
    rule: str | None = None


@dataclass(frozen=True)
class Renaming:
    """One remap stage: `names` maps a new (target-side) name to the source key it came from."""

    strategy: str
    label: str
    names: Mapping[str, str]


def parse_rule(text: str) -> tuple[str, str]:
    """`'REGEX=>REPLACEMENT'` as a (pattern, replacement) pair; the pattern must compile."""
    pattern, arrow, replacement = text.partition("=>")
    if not arrow or not pattern:
        raise UserInputError(f"--rule {text!r} must look like 'REGEX=>REPLACEMENT', e.g. '^module\\.=>'")
    try:
        re.compile(pattern)
    except re.error as exc:
        raise UserInputError(f"--rule {text!r}: bad regex: {exc}") from None
    return pattern, replacement


def apply_rules(
    keys: Sequence[str], rules: Sequence[tuple[str, str]], strategy: str = RULE, label: str = ""
) -> Renaming:
    """Apply `rules` in order to every key; keys a rule changed map their new name to the old one."""
    names: dict[str, str] = {}
    for key in keys:
        new = key
        for pattern, replacement in rules:
            new = re.sub(pattern, replacement, new)
        if new != key:
            names.setdefault(new, key)
    text = label or "; ".join(f"{p}=>{r}" for p, r in rules)
    return Renaming(strategy, text, names)


def plain_canon(side: str, key: str, shape: Shape) -> Hashable:
    """Shapes compared without their size-1 dimensions (a Linear may feed a 1x1 conv)."""
    return tuple(d for d in shape if d != 1)


def flat_canon(shape: Shape) -> Shape:
    """Output size and elements per output: a (4096, 512, 7, 7) conv and a (4096, 25088) Linear agree."""
    if len(shape) < 2:
        return tuple(shape)
    rest = 1
    for d in shape[1:]:
        rest *= d
    return (shape[0], rest)


def match_keys(
    target: Mapping[str, Shape],
    source: Mapping[str, Shape],
    renamings: Sequence[Renaming] = (),
    canon: Canon = plain_canon,
    structural: bool = True,
    target_order: Mapping[str, int] | None = None,
    source_order: Mapping[str, int] | None = None,
) -> dict[str, Match]:
    """Target key -> Match, trying each strategy on what the earlier ones left.

    `target_order` / `source_order`: each side's key -> rank of first use (structural pairing follows it).
    """
    matches: dict[str, Match] = {}
    used: set[str] = set()

    def take(t: str, s: str, strategy: str, rule: str | None = None) -> None:
        matches[t] = Match(s, strategy, rule)
        used.add(s)

    for t in target:
        if t in source:
            take(t, t, EXACT)
    for renaming in renamings:
        for t in target:
            s = renaming.names.get(t)
            if t not in matches and s is not None and s in source and s not in used:
                take(t, s, renaming.strategy, renaming.label)
    for t, s, rule in _prefix_matches(target, source, matches, used, canon):
        take(t, s, PREFIX, rule)
    if structural:
        t_rank, s_rank = _ranker(target, target_order), _ranker(source, source_order)
        for by_module, unit_canon in ((True, canon), (False, canon), (False, _flat(canon))):
            free_t = sorted((t for t in target if t not in matches), key=t_rank)
            free_s = sorted((s for s in source if s not in used), key=s_rank)
            last = unit_canon is not canon
            for t, s, rule in _structural_matches(target, source, free_t, free_s, unit_canon, by_module, last):
                take(t, s, STRUCTURE, rule)
    return matches


def _ranker(keys: Mapping[str, Shape], order: Mapping[str, int] | None):
    position = {k: n for n, k in enumerate(keys)}
    if not order:
        return position.__getitem__
    return lambda k: (order.get(k, len(order) + position[k]), position[k])


def _flat(canon: Canon) -> Canon:
    def flat(side: str, key: str, shape: Shape) -> Hashable:
        value = canon(side, key, shape)
        return flat_canon(shape) if value == plain_canon(side, key, shape) else value

    return flat


def _split(key: str, count: int) -> tuple[str, str] | None:
    parts = key.split(".")
    if len(parts) - count < 2:  # keep a module and a leaf: `weight` alone matches nothing
        return None
    return ".".join(parts[:count]), ".".join(parts[count:])


def _prefix_matches(target, source, matches, used, canon):
    """Keys equal after adding or stripping up to two leading components; the most-voted prefix pair wins."""
    free_t = [t for t in target if t not in matches]
    free_s = [s for s in source if s not in used]
    if not free_t or not free_s:
        return []
    index: dict[tuple[int, str], list[str]] = {}
    for s in free_s:
        for b in range(3):
            split = _split(s, b)
            if split:
                index.setdefault((b, split[1]), []).append(s)
    votes: dict[tuple[str, str], list[tuple[str, str]]] = {}
    for t in free_t:
        for a in range(3):
            split_t = _split(t, a)
            if not split_t:
                continue
            for b in range(3):
                if a == b == 0:
                    continue
                for s in index.get((b, split_t[1]), ()):
                    if canon("target", t, target[t]) != canon("source", s, source[s]):
                        continue
                    pair = (s.split(".")[:b], split_t[0])
                    votes.setdefault((".".join(pair[0]), pair[1]), []).append((t, s))
    result, taken_t, taken_s = [], set(), set()
    for (src_prefix, tgt_prefix), pairs in sorted(votes.items(), key=lambda kv: -len(kv[1])):
        rule = f"{src_prefix + '.' if src_prefix else ''}* -> {tgt_prefix + '.' if tgt_prefix else ''}*"
        for t, s in pairs:
            if t not in taken_t and s not in taken_s:
                taken_t.add(t)
                taken_s.add(s)
                result.append((t, s, rule))
    return result


def _units(keys, shapes, side, canon, by_module):
    """Unit -> ([leaf keys], signature) in the given order: modules, or single tensors; bookkeeping left out."""
    units: dict[str, list[str]] = {}
    for key in keys:
        if not is_bookkeeping(key):
            units.setdefault(key.rpartition(".")[0] if by_module else key, []).append(key)
    return {u: (ks, tuple(canon(side, k, shapes[k]) for k in ks)) for u, ks in units.items()}


def _structural_matches(target, source, free_t, free_s, canon, by_module: bool, last: bool):
    """Pair units with equal signatures in order; on the last pass, unequal counts of a signature are ambiguous.

    Earlier passes leave a signature whose counts differ to the next pass (finer units).
    """
    if not free_t or not free_s:
        return []
    tm, sm = _units(free_t, target, "target", canon, by_module), _units(free_s, source, "source", canon, by_module)
    by_sig: dict[Hashable, tuple[list[str], list[str]]] = {}
    for m, (_, sig) in tm.items():
        by_sig.setdefault(sig, ([], []))[0].append(m)
    for m, (_, sig) in sm.items():
        by_sig.setdefault(sig, ([], []))[1].append(m)
    ambiguous = [
        (t_mods, s_mods) for t_mods, s_mods in by_sig.values() if t_mods and s_mods and len(t_mods) != len(s_mods)
    ]
    if ambiguous and last:
        lines = "; ".join(f"target {_short(t)} vs source {_short(s)}" for t, s in ambiguous[:5])
        raise AmbiguousMatchError(
            f"structural alignment is ambiguous ({len(ambiguous)} tensor shape(s) with different counts): {lines}; "
            "add --rule 'REGEX=>REPLACEMENT' to name the pairs"
        )
    free_s_set = set(free_s)
    result = []
    for t_mods, s_mods in by_sig.values():
        if len(t_mods) != len(s_mods):
            continue
        for t_mod, s_mod in zip(t_mods, s_mods, strict=True):
            t_keys, s_keys = tm[t_mod][0], sm[s_mod][0]
            rule = f"{s_mod} -> {t_mod}"
            result.extend((t, s, rule) for t, s in zip(t_keys, s_keys, strict=True))
            if not by_module:
                continue
            t_nbt, s_nbt = f"{t_mod}.num_batches_tracked", f"{s_mod}.num_batches_tracked"
            if t_nbt in target and s_nbt in free_s_set:
                result.append((t_nbt, s_nbt, rule))
    return result


def _short(names: list[str], limit: int = 4) -> str:
    shown = ", ".join(names[:limit]) + (f", ... ({len(names)} in all)" if len(names) > limit else "")
    return f"[{shown}]"
