"""The jobs: what runs the parts together (demo, soak, evaluations, training, processes).

The top layer under the CLI: a job may import any part of the kit; no part imports a job.
"""
