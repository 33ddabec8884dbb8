package dev.panatron.cli;

import picocli.CommandLine;
import picocli.CommandLine.Command;

/** The {@code panatron} command line: {@code ./panatron <command> ...}. */
@Command(name = "panatron", mixinStandardHelpOptions = true, versionProvider = Main.Version.class,
        description = "Compressed transformer inference on native kernels.",
        subcommands = {InfoCommand.class, EmbedCommand.class, GenerateCommand.class, ForwardCommand.class, BenchCommand.class})
public final class Main implements Runnable {
    @Override
    public void run() {
        new CommandLine(this).usage(System.out);
    }

    public static void main(String[] args) {
        int rc = new CommandLine(new Main()).setCaseInsensitiveEnumValuesAllowed(true)
                .setExecutionExceptionHandler((ex, cl, parsed) -> {
                    if (!(ex instanceof IllegalArgumentException || ex instanceof java.io.IOException)) throw ex;
                    // bad input (options, model files, prompts): one clear line, no stack trace
                    cl.getErr().println("error: " + ex.getMessage());
                    return 2;
                })
                .execute(args);
        System.exit(rc);
    }

    /** Prints the library version. */
    static final class Version implements CommandLine.IVersionProvider {
        @Override
        public String[] getVersion() { return new String[] {"panatron " + dev.panatron.Panatron.version()}; }
    }
}
