/* Profiler test program: burns CPU in main -> outer -> middle -> leaf_spin for the seconds
 * given as the first argument. With "syscall" as the second argument, middle calls leaf_write
 * instead, which makes write(2) calls to /dev/null, so samples land in the kernel below it.
 * leaf_spin calls nothing and keeps a volatile local on its stack: gcc 12 sets up no frame
 * pointer in a leaf function that uses no stack, even with -fno-omit-frame-pointer
 * -mno-omit-leaf-frame-pointer, and a frame-pointer walk then loses the leaf's caller.
 * Built -O2 with and without -fomit-frame-pointer by tests/tests/profile.rs. */
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static volatile unsigned long sink;
static int devnull = -1;

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

__attribute__((noinline)) void leaf_write(unsigned long n) {
    char b[64] = {0};
    for (unsigned long i = 0; i < n / 64; i++)
        sink += (unsigned long)write(devnull, b, sizeof b);
}

__attribute__((noinline)) void leaf_spin(unsigned long n) {
    volatile unsigned long start = sink;
    unsigned long x = start;
    for (unsigned long i = 0; i < n; i++)
        x = x * 6364136223846793005UL + 1442695040888963407UL;
    sink = x;
}

__attribute__((noinline)) void middle(unsigned long n) {
    if (devnull >= 0)
        leaf_write(n);
    else
        leaf_spin(n);
    __asm__ volatile("" ::: "memory");
}

__attribute__((noinline)) void outer(unsigned long n) {
    middle(n);
    __asm__ volatile("" ::: "memory");
}

int main(int argc, char **argv) {
    double secs = argc > 1 ? atof(argv[1]) : 5.0;
    if (argc > 2 && strcmp(argv[2], "syscall") == 0)
        devnull = open("/dev/null", O_WRONLY);
    double end = now() + secs;
    while (now() < end)
        outer(1000000);
    return 0;
}
