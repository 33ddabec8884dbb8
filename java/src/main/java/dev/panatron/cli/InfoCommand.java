package dev.panatron.cli;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.panatron.CpuCaps;
import dev.panatron.Native;
import dev.panatron.Panatron;
import dev.panatron.cuda.Cuda;
import dev.panatron.cuda.CudaDevice;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;

import java.util.List;
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
        // never fails without a GPU: no driver, no libpanatron_cuda or no device give "gpus": []
        List<CudaDevice> gpus = List.of();
        String cudaStatus;
        try {
            gpus = Cuda.devices();
            cudaStatus = Cuda.status();
        } catch (RuntimeException | LinkageError e) {
            cudaStatus = "error: " + e.getMessage();
        }
        ObjectNode cuda = root.putObject("cuda");
        cuda.put("available", !gpus.isEmpty());
        cuda.put("library", cudaStatus);
        var arr = root.putArray("gpus");
        for (CudaDevice d : gpus) {
            ObjectNode g = arr.addObject();
            g.put("index", d.ordinal());
            g.put("name", d.name());
            g.put("compute_capability", d.computeCapability());
            g.put("sms", d.smCount());
            g.put("memory_bytes", d.totalMemory());
            g.put("free_memory_bytes", d.freeMemory());
            g.put("l2_bytes", d.l2Bytes());
            g.put("driver_cuda", d.driverCudaVersion());
        }
        root.put("platform", Native.platform());
        root.put("library", Native.loadedFrom());
        if (json) {
            System.out.println(om.writeValueAsString(root));
        } else {
            System.out.println("panatron " + Panatron.version() + " (" + Native.platform() + ")");
            System.out.println("  cpu:     " + String.join(" ", CpuCaps.names(caps)));
            System.out.println("  threads: " + Panatron.defaultThreads());
            System.out.println("  oneDNN:  " + (dnnl == null ? "not built in" : dnnl));
            if (gpus.isEmpty()) {
                System.out.println("  CUDA:    not available (" + cudaStatus + ")");
            } else {
                for (CudaDevice d : gpus) {
                    System.out.printf("  GPU %d:   %s, compute capability %s, %d SMs, %.1f GiB, driver CUDA %s%n", d.ordinal(), d.name(),
                            d.computeCapability(), d.smCount(), d.totalMemory() / (double) (1L << 30), d.driverCudaVersion());
                }
                System.out.println("  CUDA:    " + cudaStatus);
            }
            System.out.println("  library: " + Native.loadedFrom());
        }
        return 0;
    }
}
