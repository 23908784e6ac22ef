"""Stream apps on Quix Streams: one module per app, each a ``build(app) -> StreamingDataFrame``."""
