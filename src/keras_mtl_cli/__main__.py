"""`python -m keras_mtl_cli`: the `mtl` tool."""

import sys

from keras_mtl_cli import main

sys.exit(main())
