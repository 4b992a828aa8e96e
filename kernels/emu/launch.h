// Serial launcher for the CPU emulation: loops over the grid and the block.
#pragma once
#include "cuda_emu.h"

// Runs body() once per (block, thread) of a 1-D launch, forwards or in reverse.
template <typename F>
inline void gc_emu_launch(unsigned int grid, unsigned int block, bool reverse, F body) {
    gridDim = {grid, 1, 1};
    blockDim = {block, 1, 1};
    const unsigned long long total = (unsigned long long)grid * block;
    for (unsigned long long t = 0; t < total; ++t) {
        const unsigned long long id = reverse ? total - 1 - t : t;
        blockIdx = {(unsigned int)(id / block), 0, 0};
        threadIdx = {(unsigned int)(id % block), 0, 0};
        body();
    }
}
