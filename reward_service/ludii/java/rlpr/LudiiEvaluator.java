package rlpr;

import java.io.ByteArrayOutputStream;
import java.io.PrintStream;
import java.util.ArrayList;
import java.util.Random;

import org.apache.commons.rng.core.source64.SplitMix64;

import compiler.Compiler;
import game.Game;
import main.Status;
import main.grammar.Description;
import main.grammar.Report;
import main.options.UserSelections;
import other.context.Context;
import other.trial.Trial;

/**
 * Compiles one Ludii game description and runs seeded uniformly random playouts, all on the
 * Java side: one call per evaluation, so JPype releases the GIL for the whole of it.
 *
 * The deadline is checked after compiling, after starting each playout and after every move,
 * so an evaluation that is merely slow stops within one move of its limit and reports the
 * playouts it finished. What a single call cannot bound (one enormous compile, one move on a
 * huge board) is bounded by the Python supervisor, which kills this JVM's process.
 */
public final class LudiiEvaluator
{
	/** Ludii's compiler is not known to be thread-safe. */
	private static final Object COMPILE_LOCK = new Object();

	/** Result of one evaluation, read field by field from Python. */
	public static final class Evaluation
	{
		public boolean compiles;
		public boolean playable;
		/** The deadline passed before every playout finished. */
		public boolean timedOut;
		public int numPlayers;
		public int failedPlayouts;
		/** Per finished playout: Ludii's winner (a player id, or 0 for a draw or no winner). */
		public int[] winners = new int[0];
		/** Per finished playout: the turn (or move) cap ended it. Ludii still names a winner then. */
		public boolean[] capped = new boolean[0];
		public String message = "";
	}

	public static Evaluation evaluate(final String text, final int playouts, final int maxTurns, final long seed,
			final double timeLimitSeconds)
	{
		final Deadline deadline = new Deadline(timeLimitSeconds);
		final Evaluation result = new Evaluation();
		final Game game = compile(text, result);
		if (game == null)
			return result;
		result.compiles = true;
		result.numPlayers = game.players().count();
		game.setMaxTurns(maxTurns);
		final ArrayList<Integer> winners = new ArrayList<>();
		final ArrayList<Boolean> capped = new ArrayList<>();
		final Random random = new Random(seed);
		for (int i = 0; i < playouts; i++)
		{
			if (deadline.passed())
			{
				result.timedOut = true;
				break;
			}
			try
			{
				final Status status = playout(game, seed + i, random, deadline);
				if (status == null)
				{
					result.timedOut = true;
					break;
				}
				winners.add(Integer.valueOf(status.winner()));
				capped.add(Boolean.valueOf(status.endType() == Status.EndType.TurnLimit
						|| status.endType() == Status.EndType.MoveLimit));
			}
			catch (final Throwable t)
			{
				// Some descriptions compile and then throw at start or mid-playout.
				result.failedPlayouts++;
				if (result.message.isEmpty())
					result.message = "playout failed: " + t;
			}
		}
		result.playable = result.failedPlayouts == 0 && (winners.size() > 0 || result.timedOut);
		result.winners = winners.stream().mapToInt(Integer::intValue).toArray();
		result.capped = new boolean[capped.size()];
		for (int i = 0; i < capped.size(); i++)
			result.capped[i] = capped.get(i).booleanValue();
		return result;
	}

	private static Game compile(final String text, final Evaluation result)
	{
		synchronized (COMPILE_LOCK)
		{
			final PrintStream out = System.out;
			final PrintStream err = System.err;
			final ByteArrayOutputStream noise = new ByteArrayOutputStream();
			final PrintStream capture = new PrintStream(noise, true);
			System.setOut(capture);
			System.setErr(capture);
			try
			{
				final Report report = new Report();
				final Game game = (Game) Compiler.compile(new Description(text),
						new UserSelections(new ArrayList<String>()), report, false);
				if (game == null || report.isError())
				{
					result.message = "does not compile: " + tail(noise.toString());
					return null;
				}
				return game;
			}
			catch (final Throwable t)
			{
				result.message = String.valueOf(t.getMessage() != null ? t.getMessage() : t);
				return null;
			}
			finally
			{
				System.setOut(out);
				System.setErr(err);
			}
		}
	}

	/** One playout, one move at a time; its final status, or null if the deadline passed first. */
	private static Status playout(final Game game, final long seed, final Random random, final Deadline deadline)
	{
		final Trial trial = new Trial(game);
		final Context context = new Context(game, trial);
		context.rng().restoreState(new SplitMix64(Long.valueOf(seed)).saveState());
		game.start(context);
		while (!trial.over())
		{
			if (deadline.passed())
				return null;
			game.playout(context, null, 1.0, null, 0, 1, random);
		}
		return trial.status();
	}

	private static String tail(final String text)
	{
		final String trimmed = text.trim();
		return trimmed.length() > 2000 ? trimmed.substring(trimmed.length() - 2000) : trimmed;
	}
}
