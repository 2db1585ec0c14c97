"""Masking for MLM: 15% of the maskable tokens, 80% [MASK] / 10% random / 10% kept, optionally by whole
words. The same function serves static masking (at preprocessing) and dynamic masking (per batch at
training time); every draw comes from a SplitMix64 keyed by the instance, so masks are reproducible."""
from .rng import SplitMix64


def mask_groups(n, word_start, special, whole_word):
    """Groups of token positions that are masked together. Special tokens are never in a group.
    With whole_word, a token whose word_start bit is 0 joins the group before it."""
    groups = []
    for i in range(n):
        if special[i]:
            continue
        if whole_word and not word_start[i] and groups and groups[-1][-1] == i - 1:
            groups[-1].append(i)
        else:
            groups.append([i])
    return groups


def mask_instance(ids, word_start, special_ids, rng: SplitMix64, vocab_size, mask_id, prob=0.15,
                  whole_word=False, decision_per_word=True):
    """-> (masked ids, positions, labels), positions ascending. `ids` is not modified."""
    n = len(ids)
    special = [t in special_ids for t in ids]
    groups = mask_groups(n, word_start, special, whole_word)
    n_cand = sum(len(g) for g in groups)
    if n_cand == 0:
        return list(ids), [], []
    num_to_mask = max(1, int(n_cand * prob + 0.5))
    rng.shuffle(groups)
    out = list(ids)
    chosen = []
    count = 0
    for g in groups:
        if count >= num_to_mask:
            break
        if count + len(g) > num_to_mask:
            continue
        count += len(g)
        r = rng.random() if decision_per_word else None
        for i in g:
            r_i = r if decision_per_word else rng.random()
            if r_i < 0.8:
                out[i] = mask_id
            elif r_i < 0.9:
                out[i] = rng.randint(1, vocab_size - 1)
            chosen.append(i)
    chosen.sort()
    return out, chosen, [ids[i] for i in chosen]
