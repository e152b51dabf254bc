"""The `video_pipeline` processor: decode a video in batches and run per-frame stages.

- `decode`: PyAV decoding into bounded batches of small RGB frames.
- `stages`: the `Stage` plugin interface, the stage registry (built-ins and the
  `stoker.video_stages` entry-point group) and pipeline resolution.
- `builtin_stages`: `scene_cuts`, `motion`, `quality`, `embedding` and their helpers.
- `processor`: the registered `VideoPipelineProcessor` and `run_on_file`.
"""
