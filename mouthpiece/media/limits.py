"""Every input limit of mouthpiece, in one place (the service's plans may only lower them)."""

MAX_FILE_BYTES = 500 * 1024 * 1024  # bytes; any single input file (audio, image, video)

MAX_AUDIO_S = 1800.0  # seconds (30 min); longest speech input accepted
MIN_AUDIO_S = 0.1  # seconds; shorter input has nothing to lip-sync

MAX_IMAGE_PIXELS = 40_000_000  # width × height read from the header, checked before decoding
MIN_IMAGE_SIDE = 64  # pixels; a smaller portrait has no usable face

MIN_FPS = 5  # frames per second of the output video
MAX_FPS = 60
