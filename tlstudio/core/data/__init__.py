"""Images on disk to tf.data:
file checks, folder scan, health check, split, pipeline, relabelling, the sample.
"""
