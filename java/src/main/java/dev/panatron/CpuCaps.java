package dev.panatron;

import java.util.ArrayList;
import java.util.List;

/** CPU capability bits ({@code pt_cpu_cap}) and their names. */
public final class CpuCaps {
    private CpuCaps() {}

    public static final int AVX2 = 1, FMA = 1 << 1, AVX512F = 1 << 2, AVX512_VNNI = 1 << 3, AVX512_BF16 = 1 << 4,
            AVX512_FP16 = 1 << 5, AMX_INT8 = 1 << 6, AMX_BF16 = 1 << 7, NEON = 1 << 8, F16C = 1 << 9;

    private static final String[] NAMES = {"avx2", "fma", "avx512f", "avx512_vnni", "avx512_bf16", "avx512_fp16",
            "amx_int8", "amx_bf16", "neon", "f16c"};

    /** Every known capability name, in bit order. */
    public static List<String> allNames() { return List.of(NAMES); }

    /** The names of the bits set in {@code caps}. */
    public static List<String> names(int caps) {
        List<String> out = new ArrayList<>();
        for (int i = 0; i < NAMES.length; i++) if ((caps & (1 << i)) != 0) out.add(NAMES[i]);
        return out;
    }
}
