"""ganbench: a benchmarking and ablation harness for GAN training.

Data flows one way: spec -> cells -> trainer -> metrics -> store -> reports.
"""

__version__ = "0.1.0"
