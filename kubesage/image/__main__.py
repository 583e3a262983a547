"""`python -m kubesage.image train|serve`: what the image's train and serve commands run."""

import sys

from kubesage.image.entry import main

sys.exit(main())
