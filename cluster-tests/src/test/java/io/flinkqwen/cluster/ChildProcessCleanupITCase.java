/*
 * Licensed under the Apache License, Version 2.0 (the "License"); you may not use this file
 * except in compliance with the License. You may obtain a copy of the License at
 * http://www.apache.org/licenses/LICENSE-2.0
 */
package io.flinkqwen.cluster;

import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.BufferedReader;
import java.io.InputStreamReader;
import java.nio.charset.StandardCharsets;
import java.nio.file.Paths;
import java.time.Duration;
import java.util.List;
import java.util.Optional;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;

/**
 * The cluster's JVMs never outlive the test JVM: a parent JVM starts a child under {@link
 * ChildMain}, as {@link FlinkProcessCluster} does, and is then killed with SIGKILL (no shutdown
 * hook runs); the child must end by itself.
 */
class ChildProcessCleanupITCase {

    @Test
    void childOfAKilledParentEndsByItself() throws Exception {
        String java = Paths.get(System.getProperty("java.home"), "bin", "java").toString();
        Process parent = new ProcessBuilder(java, "-cp", System.getProperty("java.class.path"), Parent.class.getName())
                .redirectErrorStream(true).start();
        try {
            String line = new BufferedReader(new InputStreamReader(parent.getInputStream(), StandardCharsets.UTF_8))
                    .readLine();
            assertTrue(line != null && line.startsWith("child "), "the parent printed " + line);
            long pid = Long.parseLong(line.substring("child ".length()).trim());
            Optional<ProcessHandle> child = ProcessHandle.of(pid);
            assertTrue(child.isPresent() && child.get().isAlive(), "the child " + pid + " is not running");

            parent.destroyForcibly(); // SIGKILL: no shutdown hook of the parent runs
            assertTrue(parent.waitFor(30, TimeUnit.SECONDS), "the parent did not die");
            RestApi.await("the orphaned child " + pid + " to end", Duration.ofSeconds(30),
                    () -> !child.get().isAlive());
        } finally {
            parent.destroyForcibly();
        }
    }

    /** Starts {@link Sleeper} under {@link ChildMain}, prints its pid, and waits forever. */
    public static final class Parent {
        public static void main(String[] args) throws Exception {
            String java = Paths.get(System.getProperty("java.home"), "bin", "java").toString();
            Process child = new ProcessBuilder(List.of(java, "-cp", System.getProperty("java.class.path"),
                    ChildMain.class.getName(), Sleeper.class.getName())).inheritIO()
                    .redirectInput(ProcessBuilder.Redirect.PIPE).start();
            System.out.println("child " + child.pid());
            System.out.flush();
            Thread.sleep(Long.MAX_VALUE);
        }
    }

    /** A main that never ends by itself. */
    public static final class Sleeper {
        public static void main(String[] args) throws Exception {
            Thread.sleep(Long.MAX_VALUE);
        }
    }
}
