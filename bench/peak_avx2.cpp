#define PEAK_ISA 256
#include "peak_x86.h"
