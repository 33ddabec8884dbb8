package dev.panatron.cuda;

/**
 * Properties of one CUDA device ({@code pt_cuda_device_info}).
 *
 * @param ordinal             the device ordinal (0 .. count-1)
 * @param name                e.g. "NVIDIA H100 80GB HBM3"
 * @param ccMajor             compute capability, major (9 for Hopper)
 * @param ccMinor             compute capability, minor
 * @param smCount             streaming multiprocessors
 * @param totalMemory         bytes of device memory
 * @param freeMemory          bytes free when the properties were read
 * @param l2Bytes             L2 cache bytes
 * @param sharedMemPerBlock   the most dynamic shared memory one block can opt into, bytes
 * @param memoryBusWidth      bits
 * @param driverVersion       e.g. 13000 for CUDA 13.0
 * @param runtimeVersion      the CUDA runtime libpanatron_cuda was built with
 */
public record CudaDevice(int ordinal, String name, int ccMajor, int ccMinor, int smCount, long totalMemory,
                         long freeMemory, int l2Bytes, int sharedMemPerBlock, int memoryBusWidth,
                         int driverVersion, int runtimeVersion) {
    /** The compute capability as "major.minor", e.g. "9.0". */
    public String computeCapability() { return ccMajor + "." + ccMinor; }

    /** The driver's CUDA version as "major.minor", e.g. "13.0". */
    public String driverCudaVersion() { return (driverVersion / 1000) + "." + (driverVersion % 1000) / 10; }
}
