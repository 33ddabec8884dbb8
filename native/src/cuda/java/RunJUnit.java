import static org.junit.platform.engine.discovery.DiscoverySelectors.selectClass;

import java.io.PrintWriter;
import java.util.Arrays;
import org.junit.platform.engine.TestExecutionResult;
import org.junit.platform.launcher.LauncherDiscoveryRequest;
import org.junit.platform.launcher.TestExecutionListener;
import org.junit.platform.launcher.TestIdentifier;
import org.junit.platform.launcher.core.LauncherDiscoveryRequestBuilder;
import org.junit.platform.launcher.core.LauncherFactory;
import org.junit.platform.launcher.listeners.SummaryGeneratingListener;

/**
 * A minimal JUnit 5 runner for the device machine (no Maven there): runs the named test classes,
 * prints one line per test and the summary, exits 1 on any failure. Compiled by
 * native/src/cuda/prepare_device_java.sh against junit-platform-launcher.
 */
public final class RunJUnit {
    public static void main(String[] args) {
        LauncherDiscoveryRequest req = LauncherDiscoveryRequestBuilder.request()
                .selectors(Arrays.stream(args).map(c -> selectClass(c)).toList()).build();
        SummaryGeneratingListener summary = new SummaryGeneratingListener();
        TestExecutionListener lines = new TestExecutionListener() {
            @Override
            public void executionFinished(TestIdentifier id, TestExecutionResult r) {
                if (!id.isTest()) return;
                System.out.println(r.getStatus() + "  " + id.getDisplayName()
                        + r.getThrowable().map(t -> "  " + t).orElse(""));
            }

            @Override
            public void executionSkipped(TestIdentifier id, String reason) {
                System.out.println("SKIPPED  " + id.getDisplayName() + "  " + reason);
            }
        };
        LauncherFactory.create().execute(req, summary, lines);
        PrintWriter out = new PrintWriter(System.out, true);
        summary.getSummary().printTo(out);
        summary.getSummary().printFailuresTo(out, 40);
        out.flush();
        long bad = summary.getSummary().getTotalFailureCount();
        long found = summary.getSummary().getTestsFoundCount();
        System.exit(bad == 0 && found > 0 ? 0 : 1);
    }
}
