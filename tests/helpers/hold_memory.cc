// Test job handler: allocates and touches MB megabytes, holds them for MS milliseconds,
// then exits 0. Usage: hold_memory MB MS
#include <chrono>
#include <cstdlib>
#include <thread>

int main(int argc, char** argv) {
  if (argc != 3) return 2;
  size_t bytes = static_cast<size_t>(std::atol(argv[1])) * 1024 * 1024;
  char* p = static_cast<char*>(std::malloc(bytes));
  if (p == nullptr) return 1;
  // Touch every page so it counts as resident. Through a volatile pointer: a plain
  // memset of memory that is only freed afterwards is a dead store the compiler removes.
  volatile char* touch = p;
  for (size_t i = 0; i < bytes; i += 4096) touch[i] = 1;
  std::this_thread::sleep_for(std::chrono::milliseconds(std::atol(argv[2])));
  std::free(p);
  return 0;
}
