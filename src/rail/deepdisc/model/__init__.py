"""The DeepDISC network and its file: backbone, Mask R-CNN, redshift mixture head, normalisation, artifact.

``backbone`` builds ResNet-FPN backbones for any number of bands (``transformer``: MViTv2 and Swin from timm),
``redshift_head`` the mixture-density head, ``network`` the whole detector, ``normalise`` the per-band input
scaling, ``config`` the plain-data network description, ``artifact`` the weights-only model file,
``detectron2`` / ``detectron2_io`` the import of detectron2-format DeepDISC checkpoints.
"""
