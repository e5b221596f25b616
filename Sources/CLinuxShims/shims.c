// Headers only; the target needs one source file.
#include "CLinuxShims.h"
