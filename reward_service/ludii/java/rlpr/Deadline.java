package rlpr;

/**
 * A wall-clock budget checked from Java, because a running Java call cannot be
 * interrupted from Python. Needs no Ludii classes, so it is tested without the jar.
 */
public final class Deadline
{
	private final long endNanos;

	public Deadline(final double seconds)
	{
		this.endNanos = System.nanoTime() + (long) (seconds * 1e9);
	}

	public boolean passed()
	{
		return System.nanoTime() > endNanos;
	}

	/**
	 * Self-test of the watchdog loop: up to `steps` sleeps of `stepMillis`, stopping at the
	 * deadline. Returns how many steps ran. Used by the tests of the JVM host.
	 */
	public static int sleepSteps(final int steps, final long stepMillis, final double seconds)
			throws InterruptedException
	{
		final Deadline deadline = new Deadline(seconds);
		int done = 0;
		while (done < steps && !deadline.passed())
		{
			Thread.sleep(stepMillis);
			done++;
		}
		return done;
	}

	/** Busy work for `millis` ms in Java, to show that JPype calls run in parallel. */
	public static long spin(final long millis)
	{
		final long end = System.nanoTime() + millis * 1_000_000L;
		long x = 0;
		while (System.nanoTime() < end)
			x += x * 31 + 7;
		return x;
	}
}
