"""The Job: one contract module (labels, annotations, finalizers), body readers, the renderer (pure)."""
