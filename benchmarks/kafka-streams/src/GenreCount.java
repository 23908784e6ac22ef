import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.time.Duration;
import java.util.Properties;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicLong;
import org.apache.kafka.common.serialization.Serdes;
import org.apache.kafka.streams.KafkaStreams;
import org.apache.kafka.streams.StreamsBuilder;
import org.apache.kafka.streams.StreamsConfig;
import org.apache.kafka.streams.kstream.Consumed;
import org.apache.kafka.streams.kstream.Grouped;
import org.apache.kafka.streams.kstream.Materialized;
import org.apache.kafka.streams.kstream.Repartitioned;
import org.apache.kafka.streams.kstream.TimeWindows;

/**
 * The seed's sketch: watch-history, group by genre, 30-minute windows, count.
 *
 * <p>Args: bootstrap, application id, records expected, guarantee (at_least_once|exactly_once_v2),
 * grace seconds. Prints one line, "records=N seconds=S", once N records have reached the windowed
 * count (after the repartition), then stops.
 */
public final class GenreCount {
  public static void main(String[] args) throws Exception {
    String bootstrap = args[0];
    String applicationId = args[1];
    long expected = Long.parseLong(args[2]);
    String guarantee = args[3];
    long graceSeconds = Long.parseLong(args[4]);

    Properties props = new Properties();
    props.put(StreamsConfig.APPLICATION_ID_CONFIG, applicationId);
    props.put(StreamsConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
    props.put(StreamsConfig.PROCESSING_GUARANTEE_CONFIG, guarantee);
    props.put(StreamsConfig.STATE_DIR_CONFIG, System.getProperty("java.io.tmpdir") + "/" + applicationId);
    props.put(StreamsConfig.consumerPrefix("auto.offset.reset"), "earliest");

    ObjectMapper json = new ObjectMapper();
    AtomicLong counted = new AtomicLong();
    CountDownLatch done = new CountDownLatch(1);
    long[] started = {0L};

    StreamsBuilder builder = new StreamsBuilder();
    builder.stream("watch-history", Consumed.with(Serdes.String(), Serdes.String()))
        .peek((key, value) -> { if (started[0] == 0L) started[0] = System.nanoTime(); })
        .selectKey((key, value) -> genre(json, value))
        .repartition(Repartitioned.with(Serdes.String(), Serdes.String()).withName("genre"))
        .peek((key, value) -> { if (counted.incrementAndGet() >= expected) done.countDown(); })
        .groupByKey(Grouped.with(Serdes.String(), Serdes.String()))
        .windowedBy(TimeWindows.ofSizeAndGrace(Duration.ofMinutes(30), Duration.ofSeconds(graceSeconds)))
        .count(Materialized.as("genre-counts"));

    KafkaStreams streams = new KafkaStreams(builder.build(), props);
    long launched = System.nanoTime();
    streams.start();
    boolean finished = done.await(900, TimeUnit.SECONDS);
    long ended = System.nanoTime();
    streams.close(Duration.ofSeconds(30));
    streams.cleanUp();
    if (!finished) {
      System.out.println("timeout records=" + counted.get());
      System.exit(2);
    }
    System.out.printf("records=%d seconds=%.3f since_launch=%.3f%n",
        counted.get(), (ended - started[0]) / 1e9, (ended - launched) / 1e9);
  }

  private static String genre(ObjectMapper json, String value) {
    try {
      JsonNode node = json.readTree(value);
      JsonNode genre = node.get("genre");
      return genre == null ? "unknown" : genre.asText();
    } catch (Exception e) {
      return "unreadable";
    }
  }
}
