/**
 * `npm run temporal:setup`: registers the custom search attributes (FulfillmentStatus,
 * PaymentStatus, AmountTotal, Currency, Livemode) on the Temporal cluster named by TEMPORAL_ADDRESS
 * and the TEMPORAL_* connection variables. The embedded dev server registers them itself.
 */
import { Connection } from '@temporalio/client';
import { remoteTemporal } from '../src/temporal/connection';
import { registerSearchAttributes } from '../src/temporal/search-attributes';

async function main(): Promise<void> {
  if (!process.env.TEMPORAL_ADDRESS) {
    console.error('TEMPORAL_ADDRESS is not set: nothing to set up (the embedded dev server registers its search attributes itself)');
    process.exit(2);
  }
  const temporal = remoteTemporal(process.env.TEMPORAL_ADDRESS);
  const connection = await Connection.connect(temporal.connectionOptions);
  try {
    const added = await registerSearchAttributes(connection, temporal.namespace);
    console.log(added.length > 0 ? `Registered search attributes: ${added.join(', ')}` : 'All search attributes already registered');
  } finally {
    await connection.close();
  }
}

main().catch((err: unknown) => {
  console.error(`temporal:setup failed: ${(err as Error).message}`);
  process.exit(1);
});
