// Test program for tests/tests/jvm.rs: prints "ready <pid>", then for each line read on stdin
// keeps another 64 MiB of byte arrays reachable and prints "grown <total MiB>".
import java.io.BufferedReader;
import java.io.InputStreamReader;
import java.util.ArrayList;
import java.util.List;

public class HeapGrow {
    static final List<byte[]> KEPT = new ArrayList<>();

    public static void main(String[] args) throws Exception {
        System.out.println("ready " + ProcessHandle.current().pid());
        System.out.flush();
        BufferedReader in = new BufferedReader(new InputStreamReader(System.in));
        while (in.readLine() != null) {
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
