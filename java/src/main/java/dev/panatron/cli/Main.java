package dev.panatron.cli;

import picocli.CommandLine;
import picocli.CommandLine.Command;

import java.io.InputStream;
import java.io.PrintStream;
import java.io.PrintWriter;
import java.nio.charset.StandardCharsets;

/**
 * The {@code panatron} command line: {@code ./panatron <command> ...}.
 *
 * <p>Conventions of every command: results go to stdout, and only once they are complete (a
 * failure prints nothing there); progress of long steps (download, extraction, loading, weight
 * packing) and errors go to stderr; an error is one line, {@code panatron <command>: <what>},
 * with exit code 1 (2 for a bad option or argument).
 */
@Command(name = "panatron", mixinStandardHelpOptions = true, versionProvider = Main.Version.class,
        description = "Compressed transformer inference on native kernels.",
        subcommands = {InfoCommand.class, EmbedCommand.class, GenerateCommand.class, ForwardCommand.class, BenchCommand.class})
public final class Main implements Runnable {
    /** Where commands read texts from when none are given as arguments. */
    InputStream in = System.in;
    /** The error stream (progress and errors). */
    PrintStream err = System.err;

    @Override
    public void run() {
        new CommandLine(this).usage(System.out);
    }

    public static void main(String[] args) {
        System.exit(execute(args, System.in, System.out, System.err));
    }

    /**
     * Runs one command line with the given streams and returns its exit code (for tests and
     * embedding; {@link #main} exits with it).
     */
    public static int execute(String[] args, InputStream in, PrintStream out, PrintStream err) {
        Main m = new Main();
        m.in = in;
        m.err = err;
        CommandLine cl = new CommandLine(m).setCaseInsensitiveEnumValuesAllowed(true);
        cl.setOut(new PrintWriter(out, true, StandardCharsets.UTF_8));
        cl.setErr(new PrintWriter(err, true, StandardCharsets.UTF_8));
        cl.setParameterExceptionHandler((ex, a) -> {
            CommandLine c = ex.getCommandLine();
            c.getErr().println(prefix(c) + ": " + ex.getMessage() + " (see " + c.getCommandSpec().qualifiedName() + " --help)");
            return 2;
        });
        cl.setExecutionExceptionHandler((ex, c, parsed) -> {
            c.getErr().println(prefix(c) + ": " + oneLine(ex));
            return 1;
        });
        return cl.execute(args);
    }

    private static String prefix(CommandLine c) { return c.getCommandSpec().qualifiedName(); }

    /** The exception's message on one line (its class name when it has none; causes appended). */
    static String oneLine(Throwable t) {
        StringBuilder sb = new StringBuilder();
        String msg = t.getMessage();
        sb.append(msg == null || msg.isBlank() ? t.getClass().getSimpleName() : msg);
        Throwable c = t.getCause();
        if (c != null && c.getMessage() != null && (msg == null || !msg.contains(c.getMessage()))) sb.append(": ").append(c.getMessage());
        if (t instanceof NullPointerException && msg == null) sb.append(" (internal error)");
        return sb.toString().replaceAll("\\s*[\\r\\n]+\\s*", "; ");
    }

    /** Prints the library version. */
    static final class Version implements CommandLine.IVersionProvider {
        @Override
        public String[] getVersion() { return new String[] {"panatron " + dev.panatron.Panatron.version()}; }
    }
}
