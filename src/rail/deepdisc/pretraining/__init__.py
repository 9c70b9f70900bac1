"""Pretraining on label-complete simulations, then fine-tuning on real spec-z (``deepdisc pretrain``).

``randomise`` streams domain-randomised simulated chunks, ``loop`` pretrains the whole network, ``backbone``
pretrains the backbone alone, ``run`` turns flat options into a run.
"""
