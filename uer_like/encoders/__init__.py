from . import rnn, transformer, zen  # noqa: F401  (registration)
