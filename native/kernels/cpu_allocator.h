// Caching CPU allocator for libtorch tensors (see cpu_allocator.cpp for why).
#pragma once

namespace dd {

// Makes libtorch allocate CPU tensors through the caching allocator; safe to call repeatedly.
void install_caching_cpu_allocator();

}  // namespace dd
