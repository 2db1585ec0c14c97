DATA_PROCESSOR_NAMES = ("bert", "mlm", "lm", "albert", "cls")
