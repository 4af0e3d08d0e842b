// Link probes for the no-heap guarantee: each variant needs the heap one way
// or another, so each must fail to link with the firmware's link options
// ("undefined reference to `__wrap_malloc'" or `__wrap__malloc_r').
// Built only by the firmware_link_refuses_* tests.
#include <stdio.h>
#include <stdlib.h>

#include <new>

volatile float g_value = 1.5f;
void* volatile g_sink;

int main() {
#if defined(PROBE_malloc)
  g_sink = malloc(16);  // the C allocator
#elif defined(PROBE_new)
  g_sink = new (std::nothrow) int[4];  // operator new reaches malloc inside libstdc++
#elif defined(PROBE_printf_float)
  char buf[32];
  snprintf(buf, sizeof(buf), "%f", static_cast<double>(g_value));  // newlib's dtoa allocates
  g_sink = buf;
#endif
  return 0;
}
