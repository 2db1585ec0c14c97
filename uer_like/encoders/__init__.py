from . import rnn, transformer  # noqa: F401  (registration)
