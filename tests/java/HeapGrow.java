// Test program for tests/tests/jvm.rs: prints "ready <pid>", then for each line read on stdin
// keeps another 64 MiB of byte arrays reachable and prints "grown <total MiB>"; for a line
// "burn" it spins for 0.6 s of CPU time instead and prints "burnt <process CPU time in ns, as
// the JVM reports it>".
import java.io.BufferedReader;
import java.io.InputStreamReader;
import java.lang.management.ManagementFactory;
import java.util.ArrayList;
import java.util.List;

public class HeapGrow {
    static final List<byte[]> KEPT = new ArrayList<>();

    public static void main(String[] args) throws Exception {
        System.out.println("ready " + ProcessHandle.current().pid());
        System.out.flush();
        BufferedReader in = new BufferedReader(new InputStreamReader(System.in));
        String line;
        while ((line = in.readLine()) != null) {
            if (line.equals("burn")) {
                // 0.6 s of this thread's CPU time (more wall time on a busy host; 10 s at most).
                java.lang.management.ThreadMXBean threads = ManagementFactory.getThreadMXBean();
                long start = threads.getCurrentThreadCpuTime();
                long deadline = System.nanoTime() + 10_000_000_000L;
                long spins = 0;
                while (threads.getCurrentThreadCpuTime() - start < 600_000_000L
                        && System.nanoTime() < deadline) {
                    spins++;
                }
                com.sun.management.OperatingSystemMXBean os =
                    (com.sun.management.OperatingSystemMXBean) ManagementFactory.getOperatingSystemMXBean();
                System.out.println("burnt " + os.getProcessCpuTime() + " " + (spins > 0));
                System.out.flush();
                continue;
            }
            for (int i = 0; i < 64; i++) {
                byte[] chunk = new byte[1 << 20];
                chunk[i] = 1;
                KEPT.add(chunk);
            }
            System.out.println("grown " + KEPT.size());
            System.out.flush();
        }
    }
}
