"""uer_like: a UER-style pluggable pretraining framework."""
