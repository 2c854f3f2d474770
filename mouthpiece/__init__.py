"""mouthpiece: one portrait + speech → a lip-synced talking-head MP4, on a CPU, offline."""

__version__ = "0.1.0"
