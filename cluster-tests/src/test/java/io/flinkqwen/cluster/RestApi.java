/*
 * Licensed under the Apache License, Version 2.0 (the "License"); you may not use this file
 * except in compliance with the License. You may obtain a copy of the License at
 * http://www.apache.org/licenses/LICENSE-2.0
 */
package io.flinkqwen.cluster;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.IOException;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.time.Duration;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;

/** The few calls of Flink's REST API the cluster tests make, as a user's tooling would. */
final class RestApi {

    private static final ObjectMapper JSON = new ObjectMapper();

    private final String base;
    private final HttpClient http = HttpClient.newBuilder().connectTimeout(Duration.ofSeconds(5)).build();

    RestApi(String base) {
        this.base = base;
    }

    JsonNode get(String path) throws IOException, InterruptedException {
        HttpResponse<String> r = http.send(HttpRequest.newBuilder(URI.create(base + path))
                .timeout(Duration.ofSeconds(20)).GET().build(), HttpResponse.BodyHandlers.ofString());
        if (r.statusCode() / 100 != 2) {
            throw new IOException("GET " + path + ": HTTP " + r.statusCode() + " " + r.body());
        }
        return JSON.readTree(r.body());
    }

    /** Cancels a job ({@code flink cancel}). */
    void cancel(String jobId) throws IOException, InterruptedException {
        HttpResponse<String> r = http.send(HttpRequest.newBuilder(URI.create(base + "/jobs/" + jobId + "?mode=cancel"))
                .timeout(Duration.ofSeconds(20)).method("PATCH", HttpRequest.BodyPublishers.noBody()).build(),
                HttpResponse.BodyHandlers.ofString());
        if (r.statusCode() / 100 != 2) {
            throw new IOException("cancel " + jobId + ": HTTP " + r.statusCode() + " " + r.body());
        }
    }

    /** Ids of the registered TaskManagers. */
    List<String> taskManagers() throws IOException, InterruptedException {
        List<String> ids = new ArrayList<>();
        get("/taskmanagers").path("taskmanagers").forEach(t -> ids.add(t.path("id").asText()));
        return ids;
    }

    void awaitTaskManagers(int n, Duration timeout) throws Exception {
        await("" + n + " registered task managers", timeout, () -> {
            try {
                return taskManagers().size() == n;
            } catch (IOException e) {
                return false; // the REST endpoint is not up yet
            }
        });
    }

    String jobState(String jobId) throws IOException, InterruptedException {
        return get("/jobs/" + jobId).path("state").asText();
    }

    /** The job is RUNNING and so is every one of its tasks (deployed, not just scheduled). */
    boolean allTasksRunning(String jobId) throws IOException, InterruptedException {
        JsonNode job = get("/jobs/" + jobId);
        if (!job.path("state").asText().equals("RUNNING")) {
            return false;
        }
        for (JsonNode v : job.path("vertices")) {
            if (!v.path("status").asText().equals("RUNNING")) {
                return false;
            }
        }
        return true;
    }

    /** Number of completed checkpoints of the job (since it was submitted). */
    long completedCheckpoints(String jobId) throws IOException, InterruptedException {
        return get("/jobs/" + jobId + "/checkpoints").path("counts").path("completed").asLong();
    }

    /** How often the job restarted since it was submitted (its {@code numRestarts} metric). */
    long numRestarts(String jobId) throws IOException, InterruptedException {
        for (JsonNode m : get("/jobs/" + jobId + "/metrics?get=numRestarts")) {
            return m.path("value").asLong();
        }
        return 0;
    }

    /** The job's failures as Flink reports them (every exception's text), for assertions on messages. */
    String exceptions(String jobId) throws IOException, InterruptedException {
        return get("/jobs/" + jobId + "/exceptions").toString();
    }

    /**
     * The vertex (task chain) whose operators register {@code metric}, e.g. {@code kvBytesInUse};
     * waits up to 30 s for it, since the JobManager fetches metrics from the TaskManagers
     * periodically (every 0.5 s here) after the tasks register them.
     */
    String vertexWithMetric(String jobId, String metric) throws Exception {
        String[] found = new String[1];
        await("a vertex of job " + jobId + " with a metric " + metric, Duration.ofSeconds(30), () -> {
            for (JsonNode v : get("/jobs/" + jobId).path("vertices")) {
                String vid = v.path("id").asText();
                for (JsonNode m : get("/jobs/" + jobId + "/vertices/" + vid + "/metrics")) {
                    if (m.path("id").asText().endsWith("." + metric)) {
                        found[0] = vid;
                        return true;
                    }
                }
            }
            return false;
        });
        return found[0];
    }

    /**
     * Operator metrics of one vertex, by subtask: {@code subtask -> metric -> value}, for every
     * metric id {@code <subtask>.<operator>.<name>} whose name is in {@code names}.
     */
    Map<Integer, Map<String, Double>> operatorMetrics(String jobId, String vertexId, List<String> names)
            throws IOException, InterruptedException {
        List<String> ids = new ArrayList<>();
        for (JsonNode m : get("/jobs/" + jobId + "/vertices/" + vertexId + "/metrics")) {
            String id = m.path("id").asText();
            String name = id.substring(id.lastIndexOf('.') + 1);
            if (names.contains(name) && Character.isDigit(id.charAt(0))) {
                ids.add(id);
            }
        }
        Map<Integer, Map<String, Double>> out = new HashMap<>();
        if (ids.isEmpty()) {
            return out;
        }
        // ids are <subtask>.<operator name>.<metric>: names of letters, digits, '-' and '_'
        String query = String.join(",", ids);
        for (JsonNode m : get("/jobs/" + jobId + "/vertices/" + vertexId + "/metrics?get=" + query)) {
            String id = m.path("id").asText();
            int subtask = Integer.parseInt(id.substring(0, id.indexOf('.')));
            out.computeIfAbsent(subtask, k -> new HashMap<>())
                    .put(id.substring(id.lastIndexOf('.') + 1), m.path("value").asDouble());
        }
        return out;
    }

    /** Resource ids of the TaskManagers that run the vertex's subtasks, by subtask index. */
    Map<Integer, String> subtaskLocations(String jobId, String vertexId) throws IOException, InterruptedException {
        Map<Integer, String> out = new HashMap<>();
        for (JsonNode s : get("/jobs/" + jobId + "/vertices/" + vertexId).path("subtasks")) {
            out.put(s.path("subtask").asInt(), s.path("taskmanager-id").asText());
        }
        return out;
    }

    /** The fullest TaskManager heap now: used / max of {@code Status.JVM.Memory.Heap}. */
    double maxTaskManagerHeapShare() throws IOException, InterruptedException {
        double max = 0;
        for (String tm : taskManagers()) {
            Map<String, Double> m = new HashMap<>();
            for (JsonNode v : get("/taskmanagers/" + tm + "/metrics?get=Status.JVM.Memory.Heap.Used,Status.JVM.Memory.Heap.Max")) {
                m.put(v.path("id").asText(), v.path("value").asDouble());
            }
            if (m.getOrDefault("Status.JVM.Memory.Heap.Max", 0.0) > 0) {
                max = Math.max(max, m.get("Status.JVM.Memory.Heap.Used") / m.get("Status.JVM.Memory.Heap.Max"));
            }
        }
        return max;
    }

    /**
     * The highest {@code backPressuredTimeMsPerSecond} over the subtasks of the job's first vertex
     * (the source): milliseconds per second that a source subtask waited for an output buffer,
     * as the TaskManager measured it at the JobManager's last metric fetch.
     */
    double sourceBackPressuredMsPerSecond(String jobId) throws IOException, InterruptedException {
        String source = get("/jobs/" + jobId).path("vertices").get(0).path("id").asText();
        double max = 0;
        for (JsonNode m : get("/jobs/" + jobId + "/vertices/" + source
                + "/subtasks/metrics?get=backPressuredTimeMsPerSecond&agg=max")) {
            max = Math.max(max, m.path("max").asDouble());
        }
        return max;
    }

    /**
     * The highest value of every metric of the job whose id ends with {@code suffix} (over all
     * vertices and subtasks), e.g. the Kafka producer's {@code produce-throttle-time-max} that
     * the sink registers; NaN if no such metric exists.
     */
    double maxMetricEndingWith(String jobId, String suffix) throws IOException, InterruptedException {
        double max = Double.NaN;
        for (JsonNode v : get("/jobs/" + jobId).path("vertices")) {
            String vid = v.path("id").asText();
            List<String> ids = new ArrayList<>();
            for (JsonNode m : get("/jobs/" + jobId + "/vertices/" + vid + "/metrics")) {
                String id = m.path("id").asText();
                if (id.endsWith(suffix)) {
                    ids.add(id);
                }
            }
            if (ids.isEmpty()) {
                continue;
            }
            for (JsonNode m : get("/jobs/" + jobId + "/vertices/" + vid + "/metrics?get="
                    + java.net.URLEncoder.encode(String.join(",", ids), java.nio.charset.StandardCharsets.UTF_8))) {
                double value = m.path("value").asDouble(Double.NaN);
                if (!Double.isNaN(value)) {
                    max = Double.isNaN(max) ? value : Math.max(max, value);
                }
            }
        }
        return max;
    }

    /** A condition that may throw. */
    interface Check {
        boolean test() throws Exception;
    }

    /** Polls {@code check} every 200 ms; fails naming {@code what} after {@code timeout}. */
    static void await(String what, Duration timeout, Check check) throws Exception {
        long deadline = System.nanoTime() + timeout.toNanos();
        while (!check.test()) {
            if (System.nanoTime() > deadline) {
                throw new AssertionError("timed out after " + timeout + " waiting for " + what);
            }
            Thread.sleep(200);
        }
    }
}
