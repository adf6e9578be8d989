# Reply parsing and coordinate mapping (the GLM-4.5V dialect's parser).
from actions.coords import box_to_pixels, to_pixel, to_pixels
from actions.parse import ParseError, parse_box, parse_glm_reply

# Performing actions inside a sandbox's display (the executor).
from actions.errors import ActionError, ExecutorError
from actions.executor import Executor
