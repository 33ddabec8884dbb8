package dev.panatron.cli;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.panatron.CpuCaps;
import dev.panatron.Native;
import dev.panatron.Panatron;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;

import java.util.concurrent.Callable;

/** {@code panatron info [--json]}: library version, CPU capabilities, threads, oneDNN, CUDA. */
@Command(name = "info", description = "Show the native library, CPU capabilities, oneDNN and CUDA.")
final class InfoCommand implements Callable<Integer> {
    @Option(names = "--json", description = "print JSON")
    boolean json;

    @Override
    public Integer call() throws Exception {
        ObjectMapper om = new ObjectMapper();
        ObjectNode root = om.createObjectNode();
        root.put("version", Panatron.version());
        ObjectNode cpu = root.putObject("cpu");
        int caps = Panatron.cpuCaps();
        for (String name : CpuCaps.allNames()) cpu.put(name, CpuCaps.names(caps).contains(name));
        root.put("threads", Panatron.defaultThreads());
        String dnnl = Panatron.oneDnnVersion();
        if (dnnl == null) root.putNull("onednn"); else root.put("onednn", dnnl);
        root.putNull("cuda");
        root.put("platform", Native.platform());
        root.put("library", Native.loadedFrom());
        if (json) {
            System.out.println(om.writeValueAsString(root));
        } else {
            System.out.println("panatron " + Panatron.version() + " (" + Native.platform() + ")");
            System.out.println("  cpu:     " + String.join(" ", CpuCaps.names(caps)));
            System.out.println("  threads: " + Panatron.defaultThreads());
            System.out.println("  oneDNN:  " + (dnnl == null ? "not built in" : dnnl));
            System.out.println("  CUDA:    not available");
            System.out.println("  library: " + Native.loadedFrom());
        }
        return 0;
    }
}
