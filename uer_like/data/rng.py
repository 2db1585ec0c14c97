"""A tiny counter-based RNG (SplitMix64) shared bit for bit by the Python reference, the C extension
and the vectorised training-time masking. Every random choice is keyed by the integers that identify it
(seed, chunk, duplicate, instance, epoch...), so results never depend on process count or order."""

M64 = 0xFFFFFFFFFFFFFFFF
GOLDEN = 0x9E3779B97F4A7C15


def mix64(z):
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9 & M64
    z = (z ^ (z >> 27)) * 0x94D049BB133111EB & M64
    return z ^ (z >> 31)


def derive(*keys):
    """Hash a tuple of non-negative integers into a 64-bit seed."""
    s = 0x5EED5EED5EED5EED
    for k in keys:
        s = mix64((s ^ (k & M64)) + GOLDEN & M64)
    return s


class SplitMix64:
    __slots__ = ("state",)

    def __init__(self, *keys):
        self.state = derive(*keys)

    def next(self):
        self.state = (self.state + GOLDEN) & M64
        return mix64(self.state)

    def randint(self, lo, hi):
        """Uniform-ish integer in [lo, hi] (modulo reduction; the bias is below 2^-40 for our ranges)."""
        return lo + self.next() % (hi - lo + 1)

    def random(self):
        """Float in [0, 1) with 53 random bits."""
        return (self.next() >> 11) * (1.0 / 9007199254740992.0)

    def shuffle(self, items):
        """Fisher-Yates, in place."""
        for i in range(len(items) - 1, 0, -1):
            j = self.randint(0, i)
            items[i], items[j] = items[j], items[i]
