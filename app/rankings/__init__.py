"""Rankings: order contacts by a policy's ranking method, with the reason for every place."""
