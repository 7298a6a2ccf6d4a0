"""ACI capacity: the model (pure), admission before create, give-back of refused Jobs."""
