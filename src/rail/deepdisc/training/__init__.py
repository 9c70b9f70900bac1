"""Training a weighted DeepDISC ensemble on spec-z tiles (``deepdisc train``, `DeepDiscInformer`).

``run`` turns flat options into a run, ``ensemble`` trains the members and writes the artifact, ``loop``
trains one member (epochs, checkpoints, resumption), ``validation`` scores it, ``calibration`` calibrates the
ensemble, ``data`` builds targets and batches, ``checkpoint``, ``ddp``, ``finetune`` and ``loss_curves`` serve them.
"""
