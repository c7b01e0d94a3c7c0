/*
 * Licensed under the Apache License, Version 2.0 (the "License"); you may not use this file
 * except in compliance with the License. You may obtain a copy of the License at
 * http://www.apache.org/licenses/LICENSE-2.0
 */
package io.flinkqwen.cluster;

import java.io.File;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.net.InetAddress;
import java.net.ServerSocket;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.Paths;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Comparator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.TimeUnit;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import java.util.stream.Stream;
import org.apache.flink.configuration.Configuration;
import org.apache.flink.runtime.clusterframework.TaskExecutorProcessSpec;
import org.apache.flink.runtime.clusterframework.TaskExecutorProcessUtils;
import org.apache.flink.runtime.jobmanager.JobManagerProcessSpec;
import org.apache.flink.runtime.jobmanager.JobManagerProcessUtils;
import org.apache.flink.runtime.util.config.memory.ProcessMemoryUtils;

/**
 * A Flink session cluster of separate JVMs on 127.0.0.1, started from Maven artifacts the way
 * flink-dist's scripts start one: a JobManager ({@code StandaloneSessionClusterEntrypoint}) and
 * TaskManagers ({@code TaskManagerRunner}), each with the memory options and JVM flags those
 * scripts compute, on a class path that holds only what a Flink installation's {@code lib/}
 * holds. Jobs are submitted with Flink's own {@code flink run} client ({@code CliFrontend}) in a
 * JVM of its own, so user code reaches the cluster only in the jar.
 *
 * <p>Every child runs under {@link ChildMain}, which halts the child when this JVM's end of its
 * stdin closes: children never outlive the test JVM, even a {@code kill -9}ed one. {@link
 * #close()} and a shutdown hook end them sooner.
 */
final class FlinkProcessCluster implements AutoCloseable {

    /**
     * The JVM flags of flink-dist's default {@code env.java.opts.all} (Java 17 modules Flink opens),
     * plus what the kernels need: the Vector API module, and {@code java.nio} for Arrow.
     */
    static final List<String> JVM_FLAGS = jvmFlags();

    private static List<String> jvmFlags() {
        List<String> flags = new ArrayList<>(List.of(
                "-XX:+IgnoreUnrecognizedVMOptions",
                "--add-modules=jdk.incubator.vector",
                "--add-exports=java.base/sun.net.util=ALL-UNNAMED",
                "--add-exports=java.rmi/sun.rmi.registry=ALL-UNNAMED",
                "--add-exports=java.security.jgss/sun.security.krb5=ALL-UNNAMED",
                "--add-opens=java.base/java.lang=ALL-UNNAMED",
                "--add-opens=java.base/java.net=ALL-UNNAMED",
                "--add-opens=java.base/java.io=ALL-UNNAMED",
                "--add-opens=java.base/java.nio=ALL-UNNAMED",
                "--add-opens=java.base/sun.nio.ch=ALL-UNNAMED",
                "--add-opens=java.base/java.lang.reflect=ALL-UNNAMED",
                "--add-opens=java.base/java.text=ALL-UNNAMED",
                "--add-opens=java.base/java.time=ALL-UNNAMED",
                "--add-opens=java.base/java.util=ALL-UNNAMED",
                "--add-opens=java.base/java.util.concurrent=ALL-UNNAMED",
                "--add-opens=java.base/java.util.concurrent.atomic=ALL-UNNAMED",
                "--add-opens=java.base/java.util.concurrent.locks=ALL-UNNAMED",
                "-Xss8m"));
        if (Runtime.version().feature() >= 24) {
            // Arrow's memory access through sun.misc.Unsafe (Java 17 refuses this flag)
            flags.add("--sun-misc-unsafe-memory-access=allow");
        }
        return List.copyOf(flags);
    }

    private static final Pattern JOB_ID = Pattern.compile("JobID ([0-9a-f]{32})");

    final Path dir;
    final Path confDir;
    final int restPort;
    final RestApi rest;
    private final String java;
    private final String classpath;
    private final Configuration conf;
    private final List<Process> children = new CopyOnWriteArrayList<>();
    private final Map<String, Process> taskManagers = new LinkedHashMap<>();
    private final Thread hook;
    private Process jobManager;

    /**
     * @param dir the cluster's folder: config, logs, checkpoints, temporary files
     * @param libClasspath the class path of the cluster's lib/ (Flink and logging)
     * @param settings config entries added to (or replacing) the defaults here
     */
    private FlinkProcessCluster(Path dir, String libClasspath, Map<String, String> settings) throws IOException {
        this.dir = dir;
        this.confDir = dir.resolve("conf");
        Files.createDirectories(confDir);
        Files.createDirectories(dir.resolve("log"));
        Files.createDirectories(dir.resolve("tmp"));
        this.java = Paths.get(System.getProperty("java.home"), "bin", "java").toString();
        // ChildMain comes from this module's test classes; nothing else of ours is on it
        String own = Paths.get(ChildMain.class.getProtectionDomain().getCodeSource().getLocation().getPath()).toString();
        this.classpath = own + File.pathSeparator + libClasspath;
        this.restPort = freePort();

        Map<String, String> c = new LinkedHashMap<>();
        c.put("jobmanager.rpc.address", "127.0.0.1");
        c.put("jobmanager.rpc.port", Integer.toString(freePort()));
        c.put("jobmanager.bind-host", "127.0.0.1");
        c.put("rest.address", "127.0.0.1");
        c.put("rest.bind-address", "127.0.0.1");
        c.put("rest.port", Integer.toString(restPort));
        c.put("taskmanager.bind-host", "127.0.0.1");
        c.put("taskmanager.host", "127.0.0.1");
        c.put("taskmanager.numberOfTaskSlots", "1");
        c.put("jobmanager.memory.process.size", "768m");
        c.put("taskmanager.memory.process.size", "1g");
        // the jobs keep state on the heap (hashmap backend): little managed memory
        c.put("taskmanager.memory.managed.fraction", "0.05");
        c.put("taskmanager.memory.jvm-metaspace.size", "192m");
        // found dead in seconds, not the default 50 (STACK.md: 13-16 s and ~10 restarts otherwise)
        c.put("heartbeat.interval", "1000");
        c.put("heartbeat.timeout", "5000");
        c.put("cluster.registration.error-delay", "500 ms");
        c.put("metrics.fetcher.update-interval", "100 ms"); // fresh enough to see a generation under way (scenario 1)
        // The REST metric store starts a fetch only when the last one finished, and a fetch waits
        // web.timeout (default 10 min) for each TaskManager's metrics: one in flight to a killed
        // TaskManager froze every metric the later scenarios wait on (2 of 7 suite runs).
        c.put("web.timeout", "15 s");
        c.put("state.backend.type", "hashmap");
        c.put("execution.checkpointing.dir", dir.resolve("checkpoints").toUri().toString());
        c.put("io.tmp.dirs", dir.resolve("tmp").toString());
        c.put("env.java.opts.all", String.join(" ", JVM_FLAGS));
        c.putAll(settings);
        conf = new Configuration();
        StringBuilder yaml = new StringBuilder("# written by FlinkProcessCluster\n");
        for (Map.Entry<String, String> e : c.entrySet()) {
            conf.setString(e.getKey(), e.getValue());
            yaml.append(e.getKey()).append(": '").append(e.getValue().replace("'", "''")).append("'\n");
        }
        Files.writeString(confDir.resolve("config.yaml"), yaml.toString(), StandardCharsets.UTF_8);
        Files.writeString(confDir.resolve("log4j.properties"), String.join("\n",
                "rootLogger.level = INFO",
                "rootLogger.appenderRef.file.ref = file",
                "appender.file.name = file",
                "appender.file.type = File",
                "appender.file.fileName = ${sys:log.file}",
                "appender.file.layout.type = PatternLayout",
                "appender.file.layout.pattern = %d{HH:mm:ss,SSS} %-5p %-40c{1.} [%t] %m%n",
                "logger.kafka.name = org.apache.kafka",
                "logger.kafka.level = WARN",
                ""), StandardCharsets.UTF_8);
        this.rest = new RestApi("http://127.0.0.1:" + restPort);
        this.hook = new Thread(this::killAll, "flink-process-cluster-cleanup");
        Runtime.getRuntime().addShutdownHook(hook);
    }

    /** Starts the JobManager and {@code taskManagers} TaskManagers, and waits until all are registered. */
    static FlinkProcessCluster start(Path dir, String libClasspath, int taskManagers, Map<String, String> settings,
            Duration timeout) throws Exception {
        FlinkProcessCluster cluster = new FlinkProcessCluster(dir, libClasspath, settings);
        try {
            cluster.startJobManager();
            for (int i = 1; i <= taskManagers; i++) {
                cluster.startTaskManager("tm" + i);
            }
            cluster.rest.awaitTaskManagers(taskManagers, timeout);
            return cluster;
        } catch (Throwable t) {
            cluster.close();
            throw t;
        }
    }

    private void startJobManager() throws IOException {
        JobManagerProcessSpec spec = JobManagerProcessUtils.processSpecFromConfig(conf);
        List<String> cmd = jvm("jobmanager", JobManagerProcessUtils.generateJvmParametersStr(spec, conf));
        cmd.add("org.apache.flink.runtime.entrypoint.StandaloneSessionClusterEntrypoint");
        cmd.add("--configDir");
        cmd.add(confDir.toString());
        jobManager = launch(cmd, "jobmanager", Map.of());
    }

    /**
     * Starts a TaskManager with the memory flags flink-dist's {@code taskmanager.sh} computes
     * ({@code TaskExecutorProcessUtils}: heap, direct and metaspace sizes, and every derived
     * memory option as {@code -D}, which the runner insists on).
     */
    void startTaskManager(String resourceId) throws IOException {
        if (taskManagers.containsKey(resourceId) && taskManagers.get(resourceId).isAlive()) {
            throw new IllegalStateException("task manager " + resourceId + " is running");
        }
        TaskExecutorProcessSpec spec = TaskExecutorProcessUtils.processSpecFromConfig(conf);
        List<String> cmd = jvm(resourceId, ProcessMemoryUtils.generateJvmParametersStr(spec));
        cmd.add("org.apache.flink.runtime.taskexecutor.TaskManagerRunner");
        cmd.add("--configDir");
        cmd.add(confDir.toString());
        cmd.add("-D");
        cmd.add("taskmanager.resource-id=" + resourceId);
        cmd.addAll(Arrays.asList(TaskExecutorProcessUtils.generateDynamicConfigsStr(spec).trim().split("\\s+")));
        taskManagers.put(resourceId, launch(cmd, resourceId, Map.of()));
    }

    /** {@code kill -9} of a TaskManager ({@link Process#destroyForcibly()} sends SIGKILL). */
    void killTaskManager(String resourceId) throws InterruptedException {
        Process p = taskManagers.get(resourceId);
        p.destroyForcibly();
        if (!p.waitFor(30, TimeUnit.SECONDS)) {
            throw new IllegalStateException("task manager " + resourceId + " did not die");
        }
    }

    /** The JVM's memory flags (as flink-dist computes them) and ours, up to the main class. */
    private List<String> jvm(String name, String memoryFlags) {
        List<String> cmd = new ArrayList<>();
        cmd.add(java);
        cmd.addAll(Arrays.asList(memoryFlags.trim().split("\\s+")));
        cmd.addAll(JVM_FLAGS);
        cmd.add("-Dlog.file=" + logFile(name));
        cmd.add("-Dlog4j.configurationFile=" + confDir.resolve("log4j.properties").toUri());
        cmd.add("-cp");
        cmd.add(classpath);
        cmd.add(ChildMain.class.getName());
        return cmd;
    }

    Path logFile(String name) {
        return dir.resolve("log").resolve(name + ".log");
    }

    private Process launch(List<String> cmd, String name, Map<String, String> env) throws IOException {
        ProcessBuilder pb = new ProcessBuilder(cmd)
                .redirectErrorStream(true)
                .redirectOutput(ProcessBuilder.Redirect.appendTo(dir.resolve("log").resolve(name + ".out").toFile()));
        pb.environment().putAll(env);
        // stdin stays a pipe that this JVM holds open: ChildMain halts the child when it closes
        Process p = pb.start();
        children.add(p);
        return p;
    }

    /**
     * {@code flink run -d [flinkArgs] JAR [programArgs]} with this cluster's configuration, in a
     * client JVM of its own; returns the job id that the client prints.
     *
     * @throws IllegalStateException if the client fails or prints no job id, with its output
     */
    String submit(Path jar, List<String> flinkArgs, List<String> programArgs, Duration timeout) throws Exception {
        List<String> cmd = new ArrayList<>();
        cmd.add("run");
        cmd.add("-d");
        cmd.addAll(flinkArgs);
        cmd.add(jar.toString());
        cmd.addAll(programArgs);
        Client out = client(cmd, timeout);
        Matcher m = JOB_ID.matcher(out.output);
        if (!m.find()) {
            throw new IllegalStateException("flink run exited with " + out.exitCode + " and printed no job id:\n" + out.output);
        }
        return m.group(1);
    }

    /** The result of a client run: its exit code and its stdout and stderr together. */
    record Client(int exitCode, String output) {}

    /** Flink's command line client ({@code bin/flink ARGS}) against this cluster. */
    Client client(List<String> args, Duration timeout) throws Exception {
        List<String> cmd = jvm("client", "-Xmx256m");
        cmd.add("org.apache.flink.client.cli.CliFrontend");
        cmd.addAll(args);
        return runToEnd(cmd, Map.of("FLINK_CONF_DIR", confDir.toString()), timeout);
    }

    /** Runs a child JVM to its end (bounded by {@code timeout}) and returns its output. */
    Client runToEnd(List<String> cmd, Map<String, String> env, Duration timeout) throws Exception {
        Path out = Files.createTempFile(dir.resolve("tmp"), "run-", ".out");
        ProcessBuilder pb = new ProcessBuilder(cmd).redirectErrorStream(true).redirectOutput(out.toFile());
        pb.environment().putAll(env);
        Process p = pb.start();
        children.add(p);
        try {
            if (!p.waitFor(timeout.toMillis(), TimeUnit.MILLISECONDS)) {
                p.destroyForcibly().waitFor();
                throw new IllegalStateException("did not end within " + timeout + ": " + String.join(" ", cmd) + "\n"
                        + Files.readString(out));
            }
            return new Client(p.exitValue(), Files.readString(out));
        } finally {
            children.remove(p);
        }
    }

    /**
     * A JVM like the cluster's, running {@code mainClass} of the jar with the lib/ class path (as
     * {@code java -cp JAR:lib/*} would): for commands such as {@code make-test-model}.
     */
    Client runJar(Path jar, String mainClass, List<String> args, Duration timeout) throws Exception {
        List<String> cmd = jvm("tool", "-Xmx512m");
        int cp = cmd.indexOf("-cp") + 1;
        cmd.set(cp, jar + File.pathSeparator + cmd.get(cp));
        cmd.add(mainClass);
        cmd.addAll(args);
        return runToEnd(cmd, Map.of(), timeout);
    }

    /** The last {@code lines} lines of a child's log, for failure messages. */
    String tail(String name, int lines) {
        try {
            Path f = logFile(name);
            if (!Files.exists(f)) {
                return "(no " + f.getFileName() + ")";
            }
            List<String> all = Files.readAllLines(f, StandardCharsets.UTF_8);
            return String.join("\n", all.subList(Math.max(0, all.size() - lines), all.size()));
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }

    /** All TaskManager logs, current and killed, concatenated (for leak reports). */
    String taskManagerLogs() throws IOException {
        StringBuilder sb = new StringBuilder();
        for (String id : taskManagers.keySet()) {
            Path f = logFile(id);
            if (Files.exists(f)) {
                sb.append(Files.readString(f, StandardCharsets.UTF_8));
            }
        }
        return sb.toString();
    }

    /** Ends every child: SIGTERM, then after a grace period SIGKILL. */
    @Override
    public void close() {
        for (Process p : children) {
            p.destroy();
        }
        long deadline = System.nanoTime() + Duration.ofSeconds(15).toNanos();
        for (Process p : children) {
            try {
                p.waitFor(Math.max(0, deadline - System.nanoTime()), TimeUnit.NANOSECONDS);
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
            }
        }
        killAll();
        try {
            Runtime.getRuntime().removeShutdownHook(hook);
        } catch (IllegalStateException e) {
            // already shutting down: the hook runs anyway
        }
        // the TaskManagers' copies of every submitted jar (~50 MB per job); logs and config stay
        deleteQuietly(dir.resolve("tmp"));
    }

    private static void deleteQuietly(Path root) {
        try (Stream<Path> files = Files.walk(root)) {
            files.sorted(Comparator.reverseOrder()).forEach(f -> f.toFile().delete());
        } catch (IOException | UncheckedIOException e) {
            // best effort: target/ is cleaned by `mvn clean` anyway
        }
    }

    private void killAll() {
        for (Process p : children) {
            p.destroyForcibly();
        }
    }

    /** The children now alive (for the clean-up test). */
    List<ProcessHandle> liveChildren() {
        return children.stream().filter(Process::isAlive).map(Process::toHandle).toList();
    }

    static int freePort() throws IOException {
        try (ServerSocket s = new ServerSocket(0, 1, InetAddress.getLoopbackAddress())) {
            return s.getLocalPort();
        }
    }
}
