/* Profiler test program, C++: the same chain as spin.c (main -> outer -> middle -> leaf_spin)
 * under names that only demangling makes readable: a namespace, a class template's static
 * member and overloadable free functions, so the frames are
 *   wl::Spinner<unsigned long>::leaf_spin(unsigned long), wl::middle(unsigned long),
 *   wl::outer(unsigned long), main.
 * Built -O2 without frame pointers by tests/tests/profile.rs. */
#include <cstdlib>
#include <ctime>

namespace wl {

static volatile unsigned long sink;

template <typename T> struct Spinner {
    __attribute__((noinline)) static void leaf_spin(T n) {
        volatile T start = sink;
        T x = start;
        for (T i = 0; i < n; i++)
            x = x * 6364136223846793005UL + 1442695040888963407UL;
        sink = x;
    }
};

__attribute__((noinline)) void middle(unsigned long n) {
    Spinner<unsigned long>::leaf_spin(n);
    __asm__ volatile("" ::: "memory");
}

__attribute__((noinline)) void outer(unsigned long n) {
    middle(n);
    __asm__ volatile("" ::: "memory");
}

} // namespace wl

static double now() {
    timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

int main(int argc, char **argv) {
    double secs = argc > 1 ? std::atof(argv[1]) : 5.0;
    double end = now() + secs;
    while (now() < end)
        wl::outer(1000000);
    return 0;
}
