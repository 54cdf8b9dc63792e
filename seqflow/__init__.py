"""seqflow: a Prefect-orchestrated pipeline that trains, checks, tracks and promotes Keras sequence models.

Importing this package has no side effects: no environment loading, no tracking URI, no logging setup.
Those happen only when the CLI (``seqflow.cli.main``) or a flow is actually run.
"""

__version__ = "0.1.0"
