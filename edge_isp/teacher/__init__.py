"""Teachers: perception models that answer on clean images, and the cache of their answers
that the distillation stages train the joint network against (docs/ARCHITECTURE.md)."""
