"""cellpipe's version: in the runtime, because every step image carries the runtime, and the
launcher labels images and keys cached steps with it."""

VERSION = "0.1.0"
